"""What tests share and are not tests: the engine and gateway process harnesses, the rules
table, the golden-fixture helpers and the repository's paths."""
