"""Reports: terminal (rich), versioned JSON with its schema, JUnit XML."""
