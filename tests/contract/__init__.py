"""The connector contract suite: every backend against real local emulators."""
