"""Pictures in: JPEG/PNG decoding and the package's declared preprocessing.

contract.py is the ``[images.<input>]`` block of package.toml and its check against the
model's input; decode.py turns bytes into 8-bit pixels with the pixel count bounded from
the header; preprocess.py applies the contract in vectorised numpy; step.py picks a
request's picture inputs and runs the two on the model's worker thread.
"""
