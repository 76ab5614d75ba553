"""The proxy's clients of the control plane (destination now; identity and policy later).

They speak gRPC over the proxy's own HTTP/2 core instead of grpcio: grpcio would add about
17 MB to every sidecar, and these clients need only unary and server-streaming calls.
"""
