"""Pure code for the DMP protocols (VIHF token, IHE XDS.b SOAP transactions): no Django import."""
