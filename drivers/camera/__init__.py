"""Cameras: the interface (``base``), the OpenCV driver for devices, URLs, video files and image folders
(``opencv_camera``), the MJPEG-over-HTTP simulator behind ``kiosk-sim camera`` (``simulator``), and synthetic clips
made from one face photo for the demo and the tests (``synthetic``)."""
from drivers.camera.base import Camera, Frame, FramesStopped, GrabbingCamera

__all__ = ["Camera", "Frame", "FramesStopped", "GrabbingCamera"]
