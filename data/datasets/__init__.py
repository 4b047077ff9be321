"""Parsers of the official raw layouts: UCF101, HMDB51, Charades, THUMOS14, rawframe folders, video folders.

Also the localisation ground truth: UCF101-24 ``UCF101v2-GT.pkl`` boxes and THUMOS14 segment files.
"""
