"""The three services. They never import one another; they share only `contracts` and `backbone`."""
