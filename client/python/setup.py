"""Build hook: the package needs the protobuf/gRPC modules generated from
proto/tblog (see README.md). build_py copies them from tblog/_proto when
scripts/gen_python_stubs.sh has been run, or runs that script (protoc with
grpc_python_plugin, or grpcio-tools) from the repository checkout."""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.normpath(os.path.join(HERE, "..", "..", "scripts", "gen_python_stubs.sh"))


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        target = os.path.abspath(os.path.join(self.build_lib, "tblog", "_proto"))
        generated = os.path.join(HERE, "tblog", "_proto")
        if os.path.isfile(os.path.join(generated, "tblog", "v1", "tblog_pb2.py")):
            shutil.copytree(generated, target, dirs_exist_ok=True)
        elif os.path.isfile(SCRIPT):
            subprocess.check_call(["bash", SCRIPT, target])
        else:
            raise RuntimeError("tblog: no generated stubs in tblog/_proto and no "
                               "scripts/gen_python_stubs.sh to make them")


setup(cmdclass={"build_py": BuildPyWithStubs})
