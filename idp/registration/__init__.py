"""Enterprise registration after a UKey login (S03–S07), legacy binding, committee
registration and applications (T02, T04, T08), and account look-up (T05)."""
