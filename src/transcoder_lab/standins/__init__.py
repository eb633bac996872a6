"""Stand-ins of the hub for tests: small models and transcoders laid out as the paper profiles'
hub repositories (`gpt2`, `pythia`), and the local HTTP server that serves them (`hub_server`)."""
