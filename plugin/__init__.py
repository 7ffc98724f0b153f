"""netplex's node side and shared domain model.

Every module in this package imports only the standard library: the CNI plugin is
started once per pod per node, and the webhook imports the same parsers so that both
halves reach the same verdict on the same input ("one parser, one verdict").
"""
