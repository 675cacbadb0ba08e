"""Prefect flows (the DAG of a study) and the command line that starts them."""
