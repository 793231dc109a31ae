"""Case service: lifecycle, tasks, comments, timeline."""
