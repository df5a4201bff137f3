"""Customer analytics computed in Python between the core and marts layers (CLV), the segment
history that lets the marts diff runs, and the data dictionary of every published column."""
