"""Start SCons from the pip package `scons` installed next to PlatformIO.

PlatformIO runs `python <tool-scons>/scons.py ...` with the interpreter that runs PlatformIO
itself, so the SCons modules come from that environment instead of a registry download.
"""

import sys

try:
    from SCons.Script.Main import main
except ImportError:
    sys.stderr.write(
        "tool-scons: the Python package scons is not installed in the environment that runs "
        f"PlatformIO ({sys.executable}); install it with: {sys.executable} -m pip install scons\n"
    )
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main())
