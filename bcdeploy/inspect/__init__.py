"""Look inside an exported model: graph facts, metadata, parameters, FLOPs; Netron on localhost."""
