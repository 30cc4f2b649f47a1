"""Floor 1: what the process runs on: the backend's name and seeding
(``backend``), precision, devices and distribution (``compute``), the
acceleration switch (``acceleration``) and TensorFlow's quiet import (``quiet``)."""
