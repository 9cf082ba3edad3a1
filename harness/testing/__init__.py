"""pytest plugins that give scenarios a real cluster and fresh legacy databases.

The root ``conftest.py`` lists these modules in ``pytest_plugins``; each module
owns its command-line options and fixtures.
"""
