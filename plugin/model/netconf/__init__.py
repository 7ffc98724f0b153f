"""CNI network configurations, parsed and checked: the public API (see ``document``)."""

from plugin.model.netconf.document import (
    PLUGIN_TYPE_RE,
    SUPPORTED_VERSIONS,
    VERSION_RULE,
    NetConfResult,
    parse_netconf,
    parse_netconf_object,
    plugin_type_problem,
)

__all__ = [
    "PLUGIN_TYPE_RE",
    "SUPPORTED_VERSIONS",
    "VERSION_RULE",
    "NetConfResult",
    "parse_netconf",
    "parse_netconf_object",
    "plugin_type_problem",
]
