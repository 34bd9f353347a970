"""Use cases, callable from HTTP, DICOM and jobs alike; synchronous and thread-safe."""
