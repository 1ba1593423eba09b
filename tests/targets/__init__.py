"""Small servers written for the tests, with planted bugs."""
