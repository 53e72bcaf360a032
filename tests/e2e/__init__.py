"""End-to-end tests with the real AI tools (run with `make e2e`)."""
