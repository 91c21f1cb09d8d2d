"""Settings, logging, the error base and connection helpers shared by every process of extplane."""
