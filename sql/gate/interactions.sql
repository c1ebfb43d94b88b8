-- Every interaction of the home, to copy the pairs a held-out model may know into the canary's file.
SELECT * FROM interactions;
