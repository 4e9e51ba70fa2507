"""Everything that touches hardware or the kernel. Never imports the agent (posdiag)."""
