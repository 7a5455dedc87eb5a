"""Theme files shipped with chatterm."""
