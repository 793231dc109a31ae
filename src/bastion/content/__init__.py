"""Content Bastion ships: the response-workflow library (``content/workflows/*.yml``), listed, read and
installed into a tenant by :mod:`bastion.content.library`."""
