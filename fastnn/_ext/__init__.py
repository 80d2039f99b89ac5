"""fastnn's compiled extension (``_core``), built from csrc/ and the .pxi wrappers here."""
