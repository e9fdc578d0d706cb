"""Pure views of facts and plans for people: the status of a host."""
