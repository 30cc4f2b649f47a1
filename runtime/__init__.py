"""Floor 0: what every layer needs and that needs no project package: the one-line
error (``errors``), argparse types (``args``), the backend's name and seeding
(``backend``), precision and devices (``compute``), TensorFlow's quiet import."""
