"""The model zoo: `registry` first, then the families, each imported when one of its models is
asked for (`registry.FAMILIES`); importing this package loads none of them."""
