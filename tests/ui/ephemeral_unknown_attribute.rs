#[promiscuous::ephemeral(page, referrer, to = "crowdtap/page_view", id = "uuid")]
pub struct PageView {
    pub uuid: String,
    pub page: String,
    pub user_id: i32,
}

fn main() {}
