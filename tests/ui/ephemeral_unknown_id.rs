#[promiscuous::ephemeral(page, user_id, to = "crowdtap/page_view", id = "view_id")]
pub struct PageView {
    pub uuid: String,
    pub page: String,
    pub user_id: i32,
}

fn main() {}
