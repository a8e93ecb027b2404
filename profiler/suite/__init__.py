"""What to run: the suite file, its validation, and the workload plugins it names."""
