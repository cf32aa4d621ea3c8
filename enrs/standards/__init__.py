"""Pure code for the national document standards (CDA R2, XDS value sets, ebRIM): no Django import."""
