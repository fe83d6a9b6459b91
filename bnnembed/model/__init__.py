"""The integer model: encoding, packed layers, decisions, decision ids."""
