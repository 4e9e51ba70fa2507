"""Device simulators that speak the real protocols on real ptys (see each module's docstring)."""
