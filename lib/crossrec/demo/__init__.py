"""Demo and synthetic raw data, written in the formats real platforms deliver."""
