//! UserService, by concern: invitations, the lifecycle, editing and the acting rules, listing.
mod addresses;
mod editing;
mod invitations;
mod lifecycle;
mod listing;
mod moving;
