"""National formats of the directory (identifiers, nomenclatures). Pure code: no Django import here."""
