"""Files: atomic writers (``files``), run folders (``run_folder``) and the
resumable training backup (``training_backup``). Imports only :mod:`runtime`."""
