package service

// Rank is rank, for the tests of package service_test.
var Rank = rank
