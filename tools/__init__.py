"""Developer scripts that keep generated parts of the repository in step with the code."""
