"""Load around an experiment: a Chaos Toolkit control starting and stopping the generator."""
