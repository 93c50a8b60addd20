"""Sans-IO protocol layer: state machines and routing rules with no sockets and no clock."""
