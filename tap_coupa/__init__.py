"""Singer tap for Coupa, built on the Meltano Singer SDK."""
