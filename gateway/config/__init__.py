"""Settings: the environment, the YAML file, and the checks both share."""
