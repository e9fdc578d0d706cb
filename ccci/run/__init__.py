"""One invocation: settings, hosts in parallel, lean gathering, the facade the CLI drives."""
