"""The `radassist` command line: one entry point, one subcommand per verb."""
