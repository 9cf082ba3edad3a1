"""pytest plugins that give scenarios a real cluster and fresh legacy databases.

``harness.testing.plugin`` (the ``pytest11`` entry point) lists these modules; each module
owns its command-line options and fixtures.
"""
