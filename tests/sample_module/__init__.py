"""A stand-in for one of the system's modules (a reasoner), used to show how a module is tested."""
