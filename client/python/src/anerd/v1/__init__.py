"""The generated anerd.v1 gRPC stubs (anerd_pb2, anerd_pb2_grpc) land in this package when it is
built (pip install, or the anerd_python_stubs CMake target); they are never committed."""
