"""MediaPipe Hands (palm detector and landmark network) ported to JAX: the real-photograph fE2D.

``graph`` runs a converted TFLite graph in jax.numpy; ``convert`` turns a ``.tflite`` file into
the project's npz; ``shipped`` locates, rebuilds and loads the committed models; ``crops``
samples the networks' input crops on the host; ``palm`` decodes the detector's anchors and
suppresses duplicates; ``rois`` turns palms and landmarks into rotated hand regions;
``landmarks`` reads hands from those regions.
"""
