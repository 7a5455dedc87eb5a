"""Modal screens (dialogs, search, help); each returns its result through dismiss."""
