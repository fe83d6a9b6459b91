"""The deferral link: protocol, host service, decision log."""
