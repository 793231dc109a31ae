"""The console's pages, one module per area. ``install_console`` includes the ``router`` of every module
here (and adds its ``nav`` links), so a new page needs no registration anywhere else."""
